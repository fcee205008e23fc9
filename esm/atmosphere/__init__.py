"""The atmosphere: shallow-water and primitive equations, sigma coordinates, column interface, cases."""
