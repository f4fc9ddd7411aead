from pipespec.cli import main

main()
