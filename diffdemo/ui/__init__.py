"""The app's tabs: each module holds one tab's handlers and layout; ``common`` the inputs, files and
pictures they share, ``runs`` a run's life (estimate, Stop, failure), ``pickers`` the model and image band."""
