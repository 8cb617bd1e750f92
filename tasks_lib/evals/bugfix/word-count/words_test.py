import unittest

from words import count_words


class CountWordsTest(unittest.TestCase):
    def test_single_spaces(self):
        self.assertEqual(count_words("one two three"), 3)

    def test_any_whitespace(self):
        self.assertEqual(count_words("one  two\tthree\nfour"), 4)
