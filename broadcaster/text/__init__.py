"""Text rules shared by every channel: how long a message is, as each channel measures it."""
