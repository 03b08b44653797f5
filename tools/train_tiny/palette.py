"""The named things of the Auteur-Tiny world, shared by the renderer, the caption grammar and the
judge (standard library only, so the end-to-end test can import it without numpy or torch).

Object colours are bright and far apart; background colours are darker and their names share no
word with an object colour, so a generated pixel can be classified by its nearest named colour.
Directions are unit vectors in image coordinates (x right, y down).
"""
SHAPES = ("circle", "square", "triangle", "star")
COLORS = {
    "red": (220, 30, 30), "green": (30, 190, 50), "blue": (30, 90, 240), "yellow": (245, 220, 30),
    "white": (245, 245, 245), "purple": (150, 40, 210), "orange": (255, 130, 0),
}
BACKGROUNDS = {
    "black": (10, 10, 10), "gray": (90, 90, 90), "navy": (15, 25, 85), "brown": (100, 60, 25),
    "maroon": (105, 15, 35), "teal": (10, 95, 105), "olive": (90, 90, 20),
}
DIRECTIONS = {
    "right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-right": (0.7071, -0.7071), "up-left": (-0.7071, -0.7071),
    "down-right": (0.7071, 0.7071), "down-left": (-0.7071, 0.7071),
}
