from eas_core.gateway.app import main

main()
