from himbench.cli import main

main(prog_name="himbench")
