//! rexe's wallet: the user side of the peg (work in progress).
