"""Location encoder networks and their serialisation."""
