"""`python -m monitor.cli`: the same entry point as `keywatch`."""

from monitor.cli import main

main()
