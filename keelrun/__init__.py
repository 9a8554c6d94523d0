"""keelrun: a process supervisor and Procfile runner."""

__version__ = "0.1.0"
