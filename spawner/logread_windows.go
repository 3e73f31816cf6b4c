package spawner

// openNoFollow is 0 on Windows: os.OpenFile has no O_NOFOLLOW there; the
// log directory lies under the user's own profile (see docs/platforms.md).
const openNoFollow = 0
