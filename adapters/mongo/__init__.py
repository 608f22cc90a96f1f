"""MongoDB adapters (PyMongo's AsyncMongoClient): the event record/outbox and
the read models. Works against MongoDB and SecantusDB alike."""
