"""The ``paybot`` command line: start the stack, train the model, manage the database.

``main.py`` only wires argparse; each subcommand's logic lives in a module of its own.
"""
