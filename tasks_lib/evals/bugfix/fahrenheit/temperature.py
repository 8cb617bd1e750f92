def celsius_to_fahrenheit(celsius):
    return celsius * 5 / 9 + 32
