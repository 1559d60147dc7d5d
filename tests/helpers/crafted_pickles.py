"""The crafted payload the checkpoint security tests save: unpickling it would run a command."""
import os


class RunsCode:
    """Pickles as ``os.system('touch <marker>')``: if anything unpickles it, ``marker`` appears."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)
