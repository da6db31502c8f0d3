//! The pay worker as a running service against real RabbitMQ.

use std::net::SocketAddr;

use flash_kit::config::CommonConfig;
use flash_kit::testing::{Running, TcpProxy, TestAmqp};
use flash_pay::{Application, Config};
use flash_protocol::messages::Queue;

fn config(amqp: &TestAmqp) -> Config {
    Config {
        ops_addr: "127.0.0.1:0".parse().expect("addr"),
        amqp_url: amqp.url.clone(),
        amqp_name_prefix: amqp.names.prefix().to_owned(),
        common: CommonConfig::default(),
    }
}

#[tokio::test]
async fn declares_the_topology_and_serves_ops_endpoints() {
    let amqp = TestAmqp::new();
    let app = Application::build(config(&amqp)).await.expect("builds");
    let channel = app.broker.channel().await.expect("channel");
    for queue in Queue::ALL {
        let declared = channel
            .queue_declare(
                amqp.names.queue(queue).into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        assert!(declared.is_ok(), "{queue:?} not declared: {declared:?}");
    }
    let running = Running::spawn(app.port(), |shutdown| app.run_until(shutdown));
    assert_eq!(running.get("/live").await.status(), 200);
    let (status, report) = running.ready().await;
    assert_eq!(status, 200, "{report:?}");
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].name, "rabbitmq");
    running.stop().await;
}

#[tokio::test]
async fn ready_fails_naming_rabbitmq_while_it_is_cut_off_and_recovers() {
    let amqp = TestAmqp::new();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse::<SocketAddr>().expect("addr")).await;
    let mut config = config(&amqp);
    config.amqp_url = proxy.url_for(&amqp.url);
    let app = Application::build(config).await.expect("builds");
    let running = Running::spawn(app.port(), |shutdown| app.run_until(shutdown));
    assert_eq!(running.ready().await.0, 200);

    proxy.cut();
    let report = running.wait_ready(503).await;
    assert_eq!(report.failing, ["rabbitmq"]);

    proxy.restore().await;
    running.wait_ready(200).await;
    running.stop().await;
}
