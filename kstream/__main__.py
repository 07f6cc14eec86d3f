from kstream.cli.app import main

main()
