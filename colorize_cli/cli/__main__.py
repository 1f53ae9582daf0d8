from colorize_cli.cli import main

main()
