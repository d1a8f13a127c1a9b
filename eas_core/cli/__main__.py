from eas_core.cli.main import main

main()
