"""`python -m storyc`: the storyc command."""

from storyc.cli.app import main

if __name__ == "__main__":
    main()
