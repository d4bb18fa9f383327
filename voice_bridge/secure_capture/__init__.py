"""The secure capture: the only room with card and bank digits. Its door (:mod:`.door`) is the
one way in: the call handler hands it keys and gets back what to say and a status, never
digits. Behind it: the keypad state machine (:mod:`.session`), the field buffers
(:mod:`.fields`), the wording (:mod:`.wording`) and the charge (:mod:`.charge`).
"""
