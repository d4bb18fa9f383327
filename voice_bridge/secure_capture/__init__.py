"""The secure capture: the only room with card and bank digits. It owns the keypad state machine
(:mod:`.session`), the field buffers (:mod:`.fields`, :mod:`.digits`), the wording
(:mod:`.wording`) and the charge (:mod:`.charge`); the call handler hands it keys and gets back
what to say and a status, never digits."""
