import unittest

from lists import last_n


class LastNTest(unittest.TestCase):
    def test_last_two(self):
        self.assertEqual(last_n([1, 2, 3, 4], 2), [3, 4])

    def test_last_one(self):
        self.assertEqual(last_n(["a", "b", "c"], 1), ["c"])
