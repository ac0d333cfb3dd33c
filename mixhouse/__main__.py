from mixhouse.cli import main

main()
