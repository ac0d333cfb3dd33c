from mixhouse.cli import run

run()
