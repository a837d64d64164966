from tcmbench.cli import main

main()
