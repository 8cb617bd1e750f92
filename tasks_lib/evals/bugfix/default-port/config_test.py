import unittest

from config import get_port


class PortTest(unittest.TestCase):
    def test_port_given(self):
        self.assertEqual(get_port({"port": "9000"}), 9000)

    def test_default_when_missing(self):
        self.assertEqual(get_port({}), 8080)
