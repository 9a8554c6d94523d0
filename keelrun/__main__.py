from keelrun.cli import main

main()
