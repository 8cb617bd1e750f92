import unittest

from temperature import celsius_to_fahrenheit


class TemperatureTest(unittest.TestCase):
    def test_boiling(self):
        self.assertEqual(celsius_to_fahrenheit(100), 212)

    def test_freezing(self):
        self.assertEqual(celsius_to_fahrenheit(0), 32)
