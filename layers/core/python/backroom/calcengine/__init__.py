"""The calculation engine behind the gateway dialect: periods, participants, imports and calculations."""
