from ca.cli import run

run()
