use super::*;

fn settings(max: u64, quota: u64) -> StoreConfig {
    StoreConfig {
        max_upload_bytes: max,
        quota_bytes: quota,
        retention_days: 1,
        temporary_hours: 0,
    }
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn same_bytes_same_key_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::open(dir.path(), settings(100, 1000)).unwrap());
    let mut keys = Vec::new();
    for _ in 0..2 {
        let mut up = store.begin().await.unwrap();
        up.write(b"hello ").await.unwrap();
        up.write(b"video").await.unwrap();
        let staged = up.finish().await.unwrap();
        keys.push(store.commit(staged, false).unwrap());
    }
    assert_eq!(keys[0].key, keys[1].key);
    assert_eq!((keys[0].new, keys[1].new), (true, false));
    assert_eq!((keys[0].generation, keys[1].generation), (1, 2));
    assert_eq!(
        std::fs::read(store.path_of(&keys[0].key)).unwrap(),
        b"hello video"
    );
    assert_eq!(store.used_bytes(), 11);
    assert_eq!(files(&dir.path().join("incoming")), 0);
    // The first upload's job refused after the second committed: kept.
    store.remove(&keys[0]);
    assert!(store.path_of(&keys[0].key).exists());
    store.remove(&keys[1]);
    assert!(!store.path_of(&keys[0].key).exists());
    assert_eq!(store.used_bytes(), 0);
}

#[tokio::test]
async fn limits_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::open(dir.path(), settings(8, 12)).unwrap());
    let mut up = store.begin().await.unwrap();
    up.write(b"12345").await.unwrap();
    assert!(matches!(
        up.write(b"67890").await,
        Err(StoreError::TooLarge { max: 8 })
    ));
    drop(up);
    let mut up = store.begin().await.unwrap();
    up.write(b"1234567").await.unwrap();
    store.commit(up.finish().await.unwrap(), false).unwrap();
    // Past the quota while streaming: refused before it is all written.
    let mut up = store.begin().await.unwrap();
    assert!(matches!(
        up.write(b"abcdefg").await,
        Err(StoreError::Full { quota: 12 })
    ));
    drop(up);
    // Two uploads under way cannot together pass the quota either.
    let mut a = store.begin().await.unwrap();
    a.write(b"abc").await.unwrap();
    let mut b = store.begin().await.unwrap();
    assert!(matches!(
        b.write(b"defg").await,
        Err(StoreError::Full { quota: 12 })
    ));
    drop((a, b));
    // A finished upload keeps its room until it is committed or dropped.
    let mut a = store.begin().await.unwrap();
    a.write(b"abcde").await.unwrap();
    let a = a.finish().await.unwrap();
    let mut b = store.begin().await.unwrap();
    assert!(matches!(
        b.write(b"fghij").await,
        Err(StoreError::Full { quota: 12 })
    ));
    drop(b);
    store.commit(a, false).unwrap();
    assert_eq!(files(&dir.path().join("incoming")), 0);
    assert_eq!(files(&dir.path().join("objects")), 2);
}

#[tokio::test]
async fn restart_clears_half_uploads_and_sweeps_old_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::open(dir.path(), settings(100, 1000)).unwrap());
    let mut up = store.begin().await.unwrap();
    up.write(b"kept").await.unwrap();
    let key = store.commit(up.finish().await.unwrap(), false).unwrap().key;
    std::fs::write(dir.path().join("incoming/crashed.part"), b"half").unwrap();
    let store = ObjectStore::open(dir.path(), settings(100, 1000)).unwrap();
    assert_eq!(files(&dir.path().join("incoming")), 0);
    assert_eq!(store.used_bytes(), 4);
    assert_eq!(store.sweep(SystemTime::now()), 0);
    let later = SystemTime::now() + Duration::from_secs(2 * 86_400);
    assert_eq!(store.sweep(later), 1);
    assert!(!store.path_of(&key).exists());
    assert_eq!(store.used_bytes(), 0);
}

async fn put(store: &Arc<ObjectStore>, bytes: &[u8], persistent: bool) -> Committed {
    let mut up = store.begin().await.unwrap();
    up.write(bytes).await.unwrap();
    store
        .commit(up.finish().await.unwrap(), persistent)
        .unwrap()
}

#[tokio::test]
async fn temporary_uploads_go_first_persistent_ones_stay_for_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreConfig {
        temporary_hours: 2,
        retention_days: 3,
        ..settings(100, 1000)
    };
    let store = Arc::new(ObjectStore::open(dir.path(), settings.clone()).unwrap());
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let temp = put(&store, b"temporary", false).await;
    assert!(!temp.persistent);
    let expires = temp.expires.unwrap();
    assert!(expires >= now + 2 * hour && expires < now + 2 * hour + hour / 60);
    let kept = put(&store, b"persistent", true).await;
    assert!(kept.persistent);
    assert!(kept.expires.unwrap() >= now + 72 * hour);
    // Uploaded again without persistent: still persistent.
    let again = put(&store, b"persistent", false).await;
    assert!(again.persistent && !again.new);
    assert!(again.expires.unwrap() >= now + 72 * hour);
    // Temporary, then persistent: persistent from then on.
    put(&store, b"later persistent", false).await;
    let later = put(&store, b"later persistent", true).await;
    assert!(later.persistent);

    assert_eq!(store.sweep(now + hour), 0);
    assert_eq!(store.sweep(now + 3 * hour), 1, "the temporary one goes");
    assert!(!store.path_of(&temp.key).exists());
    assert!(store.path_of(&kept.key).exists());
    assert_eq!(store.sweep(now + 71 * hour), 0);
    assert_eq!(store.sweep(now + 73 * hour), 2);
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(files(&dir.path().join("persistent")), 0);

    // temporary_hours 0: as long as persistent ones; longer than the
    // retention: the retention.
    for temporary_hours in [0, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreConfig {
            temporary_hours,
            ..settings.clone()
        };
        let store = Arc::new(ObjectStore::open(dir.path(), settings).unwrap());
        let c = put(&store, b"x", false).await;
        assert!(c.expires.unwrap() < now + 73 * hour);
        assert_eq!(store.sweep(now + 71 * hour), 0, "{temporary_hours}");
        assert_eq!(store.sweep(now + 73 * hour), 1, "{temporary_hours}");
    }
    // retention_days 0 keeps persistent ones forever.
    let dir = tempfile::tempdir().unwrap();
    let forever = StoreConfig {
        retention_days: 0,
        ..settings.clone()
    };
    let store = Arc::new(ObjectStore::open(dir.path(), forever).unwrap());
    let p = put(&store, b"forever", true).await;
    assert_eq!((p.persistent, p.expires), (true, None));
    put(&store, b"not", false).await;
    assert_eq!(store.sweep(now + 1000 * 24 * hour), 1);
    assert!(store.path_of(&p.key).exists());
}

#[tokio::test]
async fn objects_stored_before_persistent_existed_stay_persistent() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreConfig {
        temporary_hours: 1,
        retention_days: 3,
        ..settings(100, 1000)
    };
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join("0123456789abcdef0123456789abcdef"), b"old").unwrap();
    let store = ObjectStore::open(dir.path(), settings.clone()).unwrap();
    let now = SystemTime::now();
    assert_eq!(store.sweep(now + Duration::from_secs(48 * 3600)), 0);
    assert_eq!(store.sweep(now + Duration::from_secs(80 * 3600)), 1);
    // A marker left without its object (a crash) goes at the next start.
    std::fs::write(dir.path().join("persistent/feed"), b"").unwrap();
    ObjectStore::open(dir.path(), settings).unwrap();
    assert_eq!(files(&dir.path().join("persistent")), 0);
}
