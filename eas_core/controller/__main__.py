from eas_core.controller.app import main

main()
