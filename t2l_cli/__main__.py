from t2l_cli.app import main

main()
