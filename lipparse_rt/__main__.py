"""`python -m lipparse_rt`: the lipparse-rt command (where the scripts folder is not on PATH)."""
from lipparse_rt.cli import run

run()
