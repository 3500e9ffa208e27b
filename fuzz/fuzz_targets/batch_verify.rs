//! BIP340 batch verification against libsecp256k1 one signature at a time: from valid
//! signatures by a few signers, the input chooses which to spoil and how (a bit of the key,
//! message or signature flipped, or 64 bytes of its own as the signature). A batch passes
//! exactly when every signature verifies alone, and `verify_each` says which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexe_chain::address::batch::{verify_batch, verify_each, SigCheck, MIN_BATCH};
use rexe_chain::{Address, Hash256, Signer};

fuzz_target!(|data: &[u8]| {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    // Enough signatures for the multi-scalar path, and a few fewer.
    let n = MIN_BATCH - 2 + usize::from(n % 24);
    let signers: Vec<Signer> = (0..4u8).map(|i| Signer::from_seed(&[i])).collect();
    let mut sigs: Vec<(Address, Hash256, [u8; 64])> = (0..n)
        .map(|i| {
            let s = &signers[i % signers.len()];
            let msg = Hash256([i as u8; 32]);
            (s.address(), msg, s.sign(&msg))
        })
        .collect();
    // Spoils of 3 bytes: which signature, what to do, where.
    while let [at, how, pos, tail @ ..] = rest {
        rest = tail;
        let (key, msg, sig) = &mut sigs[usize::from(*at) % n];
        let bit = 1u8 << (pos % 8);
        match how % 4 {
            0 => key.0[usize::from(*pos) % 32] ^= bit,
            1 => msg.0[usize::from(*pos) % 32] ^= bit,
            2 => sig[usize::from(*pos) % 64] ^= bit,
            _ => {
                if rest.len() >= 64 {
                    sig.copy_from_slice(&rest[..64]);
                    rest = &rest[64..];
                }
            }
        }
    }
    let checks: Vec<SigCheck<'_>> = sigs
        .iter()
        .map(|(key, msg, sig)| SigCheck { key, msg, sig })
        .collect();
    let alone: Vec<bool> = checks.iter().map(SigCheck::verify).collect();
    assert_eq!(verify_batch(&checks), alone.iter().all(|&ok| ok));
    assert_eq!(verify_each(&checks), alone);
});
