"""The read side: strawberry types, resolvers, DataLoaders, auth context and limits.

No business rule lives here: resolvers translate GraphQL inputs into command
payloads and read models into GraphQL types; the domain decides.
"""
