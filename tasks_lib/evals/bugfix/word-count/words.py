def count_words(text):
    """How many words the text has."""
    return len(text.split(" "))
