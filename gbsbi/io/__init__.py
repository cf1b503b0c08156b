"""Files: the maps interchange file, simulation banks, atomic writes."""
