use cosell_testkit::zip::{Entry, archive, crc32, deflate, deflate_repeated};

use super::*;

/// Spools and unpacks `files` (name, bytes) under `limits`.
async fn unpack_upload(
    files: &[(&str, Vec<u8>)],
    limits: Limits,
) -> Result<(Unpacked, Vec<Issue>), ApiError> {
    let mut spool = Spool::new(limits)?;
    for (name, bytes) in files {
        for chunk in bytes.chunks(1 << 20) {
            spool.add(name, chunk).await?;
        }
    }
    spool.finish().await
}

fn read(unpacked: &Unpacked, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    unpacked
        .open(name)
        .unwrap()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Asserts `e` refuses the export as too large, naming the zip and the entry.
fn assert_too_large(e: &ApiError, file: &str, entry: Option<&str>, says: &str) {
    assert_eq!(
        (e.code, e.reason.as_str()),
        (tonic::Code::InvalidArgument, "EXPORT_TOO_LARGE"),
        "{e}"
    );
    assert_eq!(
        e.details.metadata.get("file").map(String::as_str),
        Some(file)
    );
    assert_eq!(e.details.metadata.get("entry").map(String::as_str), entry);
    assert_eq!(e.details.field_violations[0].field, "file_name");
    assert!(e.message.contains(says), "{}", e.message);
}

const LINE: &[u8] = b"D1,A deal,A1,Open,2021-01-01T00:00:00Z,no,Partner\n";

#[tokio::test]
async fn a_bomb_is_refused_as_it_inflates_whatever_the_zip_declares() {
    // 4 GiB of lines in about 4 MB of deflate, declared as 50 bytes: checked only at the end,
    // this would inflate for minutes (and stop at the 2 GiB limit at best).
    let block = LINE.repeat((1 << 20) / LINE.len());
    let bomb = deflate_repeated(&block, 4096);
    let accounts = b"PartnerAccountId,PartnerAccountName,MpnId\nA1,One,4000002\n";
    let accounts_deflated = deflate(accounts);
    let zip = archive(&[
        Entry::deflated("export/accounts.csv", accounts, &accounts_deflated),
        Entry {
            name: "export/deals.csv",
            deflated: true,
            data: &bomb,
            crc32: 0,
            size: 50,
        },
    ]);
    let e = unpack_upload(&[("export.zip", zip)], Limits::default())
        .await
        .err()
        .expect("refused");
    assert_too_large(
        &e,
        "export.zip",
        Some("export/deals.csv"),
        "inflates to more than 200 times its compressed size",
    );
}

#[tokio::test]
async fn the_unpacked_size_is_counted_as_it_inflates() {
    let limits = Limits {
        unpacked_bytes: 3 << 20,
        ratio: 1_000_000,
        ..Limits::default()
    };
    let two = LINE.repeat((2 << 20) / LINE.len());
    let (a, b) = (deflate(&two), deflate(&two));
    // Each file alone is within the limit; the second takes the bundle past it.
    let zip = archive(&[
        Entry {
            size: 10,
            ..Entry::deflated("deals.csv", &two, &a)
        },
        Entry {
            size: 10,
            ..Entry::deflated("deal_team.csv", &two, &b)
        },
    ]);
    let e = unpack_upload(&[("bundle.zip", zip)], limits)
        .await
        .err()
        .expect("refused");
    assert_too_large(
        &e,
        "bundle.zip",
        Some("deal_team.csv"),
        "larger than 3 MiB once unpacked",
    );
    // Plain files count too.
    let e = unpack_upload(&[("deals.csv", two.clone()), ("users.csv", two)], limits)
        .await
        .err()
        .expect("refused");
    assert_too_large(&e, "users.csv", None, "larger than 3 MiB");
}

#[tokio::test]
async fn a_well_compressed_file_within_the_limits_is_read_whole_whatever_it_declares() {
    // 2.4 MB of deals that differ in their ids, compressing about 20 times.
    let deals: Vec<u8> = (0..40_000)
        .flat_map(|i| {
            format!("D{i},Deal {i},A1,Open,2021-01-01T00:00:00Z,no,Partner\n").into_bytes()
        })
        .collect();
    let compressed = deflate(&deals);
    let ratio = deals.len() / compressed.len();
    assert!((5..MAX_RATIO as usize).contains(&ratio), "ratio {ratio}");
    let zip = archive(&[Entry {
        size: 7, // a lie the other way: the file is read to its end
        ..Entry::deflated("deals.csv", &deals, &compressed)
    }]);
    let (unpacked, warnings) = unpack_upload(&[("e.zip", zip)], Limits::default())
        .await
        .unwrap();
    assert!(warnings.is_empty());
    assert_eq!(read(&unpacked, "deals.csv"), deals);
}

#[tokio::test]
async fn a_damaged_entry_is_refused() {
    let deals = LINE.repeat(10);
    let compressed = deflate(&deals);
    let zip = archive(&[Entry {
        crc32: crc32(&deals) ^ 1,
        ..Entry::deflated("deals.csv", &deals, &compressed)
    }]);
    let e = unpack_upload(&[("e.zip", zip)], Limits::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(e.code, tonic::Code::InvalidArgument);
    assert!(e.message.contains("checksum"), "{e}");
}

#[tokio::test]
async fn a_zip_listing_too_many_files_is_refused_before_its_directory_is_read() {
    let names: Vec<String> = (0..1001).map(|i| format!("junk/{i}.txt")).collect();
    let entries = |n: usize| -> Vec<Entry<'_>> {
        names[..n]
            .iter()
            .map(|name| Entry {
                name,
                deflated: false,
                data: b"x",
                crc32: crc32(b"x"),
                size: 1,
            })
            .collect()
    };
    let e = unpack_upload(&[("e.zip", archive(&entries(1001)))], Limits::default())
        .await
        .err()
        .expect("refused");
    assert_too_large(&e, "e.zip", None, "more than 1000 files");
    let (_, warnings) = unpack_upload(&[("e.zip", archive(&entries(1000)))], Limits::default())
        .await
        .unwrap();
    assert_eq!(
        warnings.len(),
        1000,
        "files not of a PSC export are warnings"
    );
}

#[tokio::test]
async fn what_is_sent_is_bounded_too() {
    let limits = Limits {
        upload_bytes: 100,
        ..Limits::default()
    };
    let mut spool = Spool::new(limits).unwrap();
    spool.add("deals.csv", &[b'x'; 100]).await.unwrap();
    let e = spool.add("deals.csv", b"y").await.unwrap_err();
    assert_too_large(&e, "deals.csv", None, "larger than 100 bytes");
    let mut spool = Spool::new(Limits::default()).unwrap();
    for i in 0..MAX_FILES {
        spool.add(&format!("f{i}.csv"), b"x").await.unwrap();
    }
    let e = spool.add("one-too-many.csv", b"x").await.unwrap_err();
    assert_eq!(e.details.field_violations[0].field, "file_name");
}

#[tokio::test]
async fn a_refused_or_abandoned_upload_leaves_nothing_behind() {
    let block = LINE.repeat((1 << 20) / LINE.len());
    let bomb = deflate_repeated(&block, 64);
    let zip = archive(&[Entry {
        name: "deals.csv",
        deflated: true,
        data: &bomb,
        crc32: 0,
        size: 1,
    }]);
    let mut spool = Spool::new(Limits::default()).unwrap();
    spool.add("e.zip", &zip).await.unwrap();
    let path = spool.path().to_owned();
    assert!(path.exists());
    assert!(spool.finish().await.is_err());
    assert!(!path.exists(), "the spool of a refused upload is removed");

    // An unpacking whose caller went away stops at its next block and removes its files.
    let limits = Limits {
        ratio: 1_000_000,
        ..Limits::default()
    };
    let mut spool = Spool::new(limits).unwrap();
    spool.add("e.zip", &zip).await.unwrap();
    spool.close().await.unwrap();
    let path = spool.path().to_owned();
    let files = std::mem::take(&mut spool.files);
    let cancel = AtomicBool::new(true);
    let e = unpack(spool.dir, &files, &limits, &cancel)
        .err()
        .expect("stopped");
    assert_eq!(e.code, tonic::Code::Unavailable);
    assert!(!path.exists());
}

#[tokio::test]
async fn a_zip64_end_record_declaring_billions_of_files_is_refused() {
    // A reader sizes its tables by the count a zip64 end record declares: one that declares
    // 2^40 files, placed where readers look for it, is refused before the zip is opened.
    let data = LINE.repeat(3);
    let mut zip = archive(&[Entry {
        name: "deals.csv",
        deflated: false,
        data: &data,
        crc32: crc32(&data),
        size: data.len() as u32,
    }]);
    let end = zip.split_off(zip.len() - 22);
    let at = zip.len() as u64;
    let mut record = Vec::new();
    record.extend_from_slice(b"PK\x06\x06");
    record.extend_from_slice(&44u64.to_le_bytes());
    record.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    record.extend_from_slice(&(1u64 << 40).to_le_bytes());
    record.extend_from_slice(&(1u64 << 40).to_le_bytes());
    record.extend_from_slice(&[0; 16]);
    record.extend_from_slice(b"PK\x06\x07");
    record.extend_from_slice(&0u32.to_le_bytes());
    record.extend_from_slice(&at.to_le_bytes());
    record.extend_from_slice(&1u32.to_le_bytes());
    zip.extend(record);
    zip.extend(end);
    let e = unpack_upload(&[("e.zip", zip)], Limits::default())
        .await
        .err()
        .expect("refused");
    assert_too_large(&e, "e.zip", None, "more than 1000 files");
}
