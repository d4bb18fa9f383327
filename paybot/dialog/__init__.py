"""What the dialog (Rasa and its actions) shares with the channels: the input channel that
keeps users from injecting intents, and the typed instructions the bot gives the bridge."""
