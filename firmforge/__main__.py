from firmforge.cli import main

main()
