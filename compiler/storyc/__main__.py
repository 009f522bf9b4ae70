from storyc.cli.app import main

main()
