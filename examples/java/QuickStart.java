/*
 * The Java reference client's quick start against socketd-broker (docs/clients.md, "Java"): send,
 * sendAndRequest and sendAndSubscribe from a caller to a service named `svc`, both reference clients, over each
 * URL given. The client is not part of this repository: put org.noear:socketd and a transport
 * (socketd-transport-java-tcp, -java-udp, -java-websocket, ...) 2.5.x on the classpath.
 *
 *     java -cp <socketd jars>:examples/java QuickStart sd:tcp://127.0.0.1:8602/ sd:udp://127.0.0.1:8603/
 *     java -Dca=cert.pem -cp ... QuickStart sd:tcps://127.0.0.1:8612/      # TLS, trusting the PEM certificate
 *
 * Prints what each step got and exits 0 only when every step got what it expected.
 */
import org.noear.socketd.SocketD;
import org.noear.socketd.transport.core.Entity;
import org.noear.socketd.transport.core.Reply;
import org.noear.socketd.transport.client.ClientSession;
import org.noear.socketd.transport.core.entity.StringEntity;
import org.noear.socketd.transport.core.listener.EventListener;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class QuickStart {
    static int failures = 0;

    public static void main(String[] args) throws Exception {
        String[] urls = args.length > 0 ? args : new String[]{"sd:tcp://127.0.0.1:8602/"};
        System.out.println("socket.d " + SocketD.version() + " (Java) on Java " + System.getProperty("java.version"));
        for (String url : urls) run(url);
        System.out.println(failures == 0 ? "all passed" : failures + " failed");
        System.exit(failures == 0 ? 0 : 1);
    }

    /** With -Dca=FILE (a PEM certificate): a TLS context that trusts it, else null (no TLS). */
    static SSLContext tls() throws Exception {
        String ca = System.getProperty("ca");
        if (ca == null) return null;
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (FileInputStream in = new FileInputStream(ca)) {
            trust.setCertificateEntry("broker", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, factory.getTrustManagers(), null);
        return context;
    }

    static Entity toSvc(String text) {
        return new StringEntity(text).metaPut("@", "svc");
    }

    static void run(String url) throws Exception {
        System.out.println(url);
        List<String> messages = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch messageSeen = new CountDownLatch(1);
        String sep = url.contains("?") ? "&" : "?";
        SSLContext tls = tls();
        ClientSession svc = SocketD.createClient(url + sep + "@=svc").config(c -> c.sslContext(tls)).listen(new EventListener().doOn("hello", (s, m) -> {
            if (m.isRequest()) {
                s.replyEnd(m, new StringEntity("re:" + m.dataAsString()));
            } else if (m.isSubscribe()) {
                for (int i = 0; i < 3; i++) s.reply(m, new StringEntity("part" + i));
                s.replyEnd(m, new StringEntity("end"));
            } else {
                messages.add(m.dataAsString());
                messageSeen.countDown();
            }
        })).open();
        ClientSession caller = SocketD.createClient(url).config(c -> c.sslContext(tls)).open();
        try {
            caller.send("hello", toSvc("m1"));
            messageSeen.await(10, TimeUnit.SECONDS);
            report("send", messages.equals(List.of("m1")), messages);

            // await(): the answer is kept by the stream's future, so an early answer is never lost.
            Reply reply = caller.sendAndRequest("hello", toSvc("q1")).await();
            report("sendAndRequest", "re:q1".equals(reply.dataAsString()), reply.dataAsString());

            // thenReply() is attached after the Subscribe was written: a Reply that is faster is not seen
            // (docs/clients.md, "Java").
            List<String> parts = Collections.synchronizedList(new ArrayList<>());
            CountDownLatch ended = new CountDownLatch(1);
            caller.sendAndSubscribe("hello", toSvc("s1")).thenReply(r -> {
                parts.add(r.dataAsString());
                if (r.isEnd()) ended.countDown();
            });
            ended.await(10, TimeUnit.SECONDS);
            report("sendAndSubscribe", parts.equals(List.of("part0", "part1", "part2", "end")), parts);
        } finally {
            caller.close();
            svc.close();
        }
    }

    static void report(String step, boolean ok, Object got) {
        System.out.println("  " + (ok ? "ok  " : "FAIL") + " " + step + ": " + got);
        if (!ok) failures++;
    }
}
