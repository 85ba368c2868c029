//! Noise XX handshake and transport throughput (criterion). Results: docs/BENCHMARKS.md.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kith::protocol::identity::{IdentityKey, Sas, safety_number};
use kith::protocol::noise::{Handshake, Keypair, Role, Transport};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn handshake_pair(rng: &mut ChaCha20Rng, a: &Keypair, b: &Keypair) -> (Transport, Transport) {
    let mut i = Handshake::new(Role::Initiator, a, Keypair::generate(rng), b"bench");
    let mut r = Handshake::new(Role::Responder, b, Keypair::generate(rng), b"bench");
    let m1 = i.write_message(&[]).unwrap();
    r.read_message(&m1).unwrap();
    let m2 = r.write_message(&[]).unwrap();
    i.read_message(&m2).unwrap();
    let m3 = i.write_message(&[]).unwrap();
    r.read_message(&m3).unwrap();
    (i.into_transport().unwrap(), r.into_transport().unwrap())
}

fn handshake(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = Keypair::generate(&mut rng);
    let b = Keypair::generate(&mut rng);
    // Both sides, ephemeral key generation included: what one session costs the two peers.
    c.bench_function("noise_xx_full_handshake_both_sides", |bench| {
        bench.iter(|| handshake_pair(&mut rng, &a, &b))
    });
}

fn transport(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let a = Keypair::generate(&mut rng);
    let b = Keypair::generate(&mut rng);
    let (mut tx, mut rx) = handshake_pair(&mut rng, &a, &b);
    let msg = vec![0x42u8; 16 * 1024];
    let mut group = c.benchmark_group("noise_transport_16KiB");
    group.throughput(Throughput::Bytes(msg.len() as u64));
    group.bench_function("encrypt_then_decrypt", |bench| {
        bench.iter(|| {
            let ct = tx.encrypt(&msg).unwrap();
            rx.decrypt(&ct).unwrap()
        })
    });
    group.bench_function("encrypt_then_decrypt_in_place", |bench| {
        bench.iter(|| {
            let mut ct = tx.encrypt(&msg).unwrap();
            rx.decrypt_in_place(&mut ct).unwrap().len()
        })
    });
    group.bench_function("encrypt", |bench| bench.iter(|| tx.encrypt(&msg).unwrap()));
    group.bench_function("decrypt", |bench| {
        bench.iter_batched(|| tx.encrypt(&msg).unwrap(), |ct| rx.decrypt(&ct).unwrap(), BatchSize::SmallInput)
    });
    group.finish();
}

fn verification(c: &mut Criterion) {
    let a = IdentityKey([1; 32]);
    let b = IdentityKey([2; 32]);
    c.bench_function("safety_number", |bench| bench.iter(|| safety_number(&a, &b)));
    c.bench_function("sas", |bench| bench.iter(|| Sas::from_handshake_hash(&[7; 32])));
}

criterion_group!(benches, handshake, transport, verification);
criterion_main!(benches);
