"""What a registered model accepts and answers: its signature's columns and the wire protocols."""
