"""The ARM emulator: routes for each resource provider, registered on one Router."""
