import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.security.SecureRandom;

/**
 * How fast this JVM seals TLS-sized records (16 KiB) with the AEADs TLS 1.3 offers: shows
 * whether the JIT options a broker runs with turn AES-GCM into the CPU's AES/GHASH
 * instructions (HotSpot's C2 intrinsics) or leave it as compiled Java (C1 alone).
 *
 *   java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 bench/jvm/GcmCheck.java aes128 3
 *   java -XX:+UseSerialGC bench/jvm/GcmCheck.java aes256 3     (aes128, aes256 or chacha; seconds)
 *
 * Add -XX:+UnlockDiagnosticVMOptions -XX:+PrintIntrinsics to list the intrinsics used.
 */
public class GcmCheck {
    public static void main(String[] args) throws Exception {
        String which = args[0];
        double seconds = Double.parseDouble(args[1]);
        SecureRandom random = new SecureRandom();
        byte[] record = new byte[16384];
        random.nextBytes(record);
        byte[] out = new byte[record.length + 16];
        byte[] iv = new byte[12];
        byte[] key = new byte[which.equals("aes128") ? 16 : 32];
        random.nextBytes(key);
        Cipher cipher = Cipher.getInstance(which.startsWith("aes") ? "AES/GCM/NoPadding" : "ChaCha20-Poly1305");
        SecretKeySpec spec = new SecretKeySpec(key, which.startsWith("aes") ? "AES" : "ChaCha20");
        long bytes = 0, counter = 0;
        long warmEnd = System.nanoTime() + 3_000_000_000L;  // 3 s warm-up, not counted
        long start = 0, end = 0;
        boolean measuring = false;
        while (true) {
            long now = System.nanoTime();
            if (!measuring && now >= warmEnd) { measuring = true; start = now; end = now + (long) (seconds * 1e9); bytes = 0; }
            if (measuring && now >= end) break;
            counter++;
            for (int i = 0; i < 8; i++) iv[i] = (byte) (counter >>> (8 * i));
            if (which.startsWith("aes")) cipher.init(Cipher.ENCRYPT_MODE, spec, new GCMParameterSpec(128, iv));
            else cipher.init(Cipher.ENCRYPT_MODE, spec, new IvParameterSpec(iv));
            bytes += cipher.doFinal(record, 0, record.length, out, 0);
        }
        double secs = (System.nanoTime() - start) / 1e9;
        System.out.printf("%s %.0f MB/s%n", which, bytes / secs / 1e6);
    }
}
