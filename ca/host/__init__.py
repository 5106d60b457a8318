"""The machine revoca runs on: file modes under the data directory, the services' Unix identities."""
