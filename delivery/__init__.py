"""The delivery dispatcher: issued notice versions out to e-mail, push and SWIFT."""
