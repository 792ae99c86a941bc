"""`python -m warp_phys` runs the `warp-phys` command."""

from ._cli import main


main()
