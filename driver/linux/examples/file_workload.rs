//! The file-heavy workload of `scripts/bench-linux-overhead.sh`: creates,
//! writes, reads back and deletes many small files in one directory, and
//! prints the elapsed wall time in nanoseconds (one number on stdout).
//!
//! Usage: file_workload DIR FILES [BYTES]
use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let files: usize = args
        .next()
        .expect("FILES")
        .parse()
        .expect("FILES is a number");
    let bytes: usize = args
        .next()
        .map_or(1024, |b| b.parse().expect("BYTES is a number"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    let payload = vec![b'x'; bytes];
    let mut back = Vec::with_capacity(bytes);
    let start = Instant::now();
    for i in 0..files {
        let path = dir.join(format!("f{i}.dat"));
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&payload).expect("write");
        drop(f);
        back.clear();
        std::fs::File::open(&path)
            .expect("open")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back.len(), bytes);
        std::fs::remove_file(&path).expect("delete");
    }
    println!("{}", start.elapsed().as_nanos());
}
