import unittest

from text import is_palindrome


class PalindromeTest(unittest.TestCase):
    def test_ignores_case(self):
        self.assertTrue(is_palindrome("Level"))
        self.assertTrue(is_palindrome("noON"))

    def test_still_rejects_others(self):
        self.assertFalse(is_palindrome("Python"))
        self.assertTrue(is_palindrome("racecar"))
