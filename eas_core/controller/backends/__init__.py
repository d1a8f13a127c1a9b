"""Where instances run. A backend answers four questions: place · stop · observe · nodes."""
