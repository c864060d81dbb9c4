"""Azurite process manager (placeholder: being written)."""


class Azurite:
    def __init__(self, home, port, cert, key, log_path):
        self.port = port

    def start(self, accounts):
        pass

    def stop(self):
        pass

    def ready(self):
        return True

    def reset(self):
        pass
