"""What the dialog (Rasa and its actions) shares with the channels: the typed instructions the
bot gives the bridge, the bridge's signed word for a caller, and the metadata paybot keeps."""
